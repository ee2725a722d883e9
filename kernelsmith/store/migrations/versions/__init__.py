"""Numbered revision files: 0001_initial.py, 0002_..., applied in order; never edit a released one."""
