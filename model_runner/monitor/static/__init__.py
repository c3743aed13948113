"""The monitor's page assets: HTML, script, style and icon (data files, shipped in the package)."""
