"""pytest support: the plugin (:mod:`containerkit.testing.plugin`, registered through the
``pytest11`` entry point), the check whether containers can run here, and test images built
from files next to the tests. Importing this package does not import pytest."""
