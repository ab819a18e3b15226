"""Figures and reports for humans: image grids now, the study's HTML report later."""

from .figures import image_grid, save_image_grid

__all__ = ["image_grid", "save_image_grid"]
