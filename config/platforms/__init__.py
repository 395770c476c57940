"""The shipped platform profiles (<platform>.yaml) and example sites (platforms.ini).

Installed as the package data of `launcher.platforms` (see pyproject.toml) and read with
importlib.resources; user profiles live in the user config directory (see launcher.config).
"""
