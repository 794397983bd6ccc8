"""Build hook: ship the top-level config.example.yaml inside the `specs` package, so `klx demo` and
`klx init` find it wherever klx is installed, without a second copy of the file in the repository."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLE = "config.example.yaml"


class BuildPyWithExample(build_py):
    """build_py, plus config.example.yaml copied into the built `specs` package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "specs" / EXAMPLE
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(EXAMPLE, str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / "specs" / EXAMPLE)]


setup(cmdclass={"build_py": BuildPyWithExample})
