"""Model packages: bundled demo model, face detector files and helpers to
import, quantise and verify model packages."""
