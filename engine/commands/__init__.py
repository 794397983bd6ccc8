"""The logic of klx's operating commands (run, schedule, check, discover, plan, state, runs); cli.py only parses."""
