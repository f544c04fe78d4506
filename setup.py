"""Package definition of alc-backend; dependencies are pinned in requirements*.txt."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def requirements(file_name: str) -> list[str]:
    lines = (HERE / file_name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="alc-backend",
    version="0.1.0",
    description="Active label correction of semantic-segmentation data sets, as a Label Studio ML backend",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["alc_backend", "alc_backend.*"]),
    install_requires=requirements("requirements.txt"),
    extras_require={
        "queue": requirements("requirements-queue.txt"),
        "sam": requirements("requirements-sam.txt"),
        "mobilesam": requirements("requirements-sam.txt") + requirements("requirements-mobilesam.txt"),
        "dev": requirements("requirements-dev.txt")
        + requirements("requirements-queue.txt")
        + requirements("requirements-sam.txt")
        + requirements("requirements-mobilesam.txt"),
    },
    entry_points={"console_scripts": ["alc-backend=alc_backend.cli:main"]},
)
