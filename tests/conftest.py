pytest_plugins = ["tests.golden_plugin"]
