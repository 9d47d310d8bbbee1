"""The contract both planes share: the schema, the YAML loader and the example files.

This package imports neither aiohttp nor redis (import-linter enforces it).
"""
