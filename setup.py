"""Packaging: the five top-level folders install as parts of one namespace, ``videxperts.<folder>``.

The repository keeps its flat layout (``training/``, ``storage/``, ...); ``package_dir`` maps each
folder under ``videxperts`` so an installed copy never adds generic top-level names such as
``training`` to a user's environment. Subpackages are found per folder, so a new one ships
without editing this file. Everything else lives in setup.cfg.
"""

from setuptools import find_packages, setup

FOLDERS = ("cluster", "extractors", "pipelines", "storage", "training", "configs")

packages = ["videxperts"]
package_dir = {"videxperts": "videxperts"}
for folder in FOLDERS:
    packages.append(f"videxperts.{folder}")
    package_dir[f"videxperts.{folder}"] = folder
    packages += [f"videxperts.{folder}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=package_dir,
    # configs: YAML only (extraction profiles, training configs by task); deploy files of cluster/
    package_data={"videxperts.configs": ["*/*.yaml", "*/*/*.yaml"], "videxperts.cluster": ["deploy/*.yaml", "deploy/*.md"]},
)
