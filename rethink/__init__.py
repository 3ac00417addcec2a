"""rethink: reproduce and extend *Rethinking the Value of Network Pruning* (Liu et al., ICLR 2019)."""

from rethink.sweep_name import register as _register_sweep_name

__version__ = "0.1.0"

_register_sweep_name()  # before Hydra resolves a sweep's folder, in every process that imports rethink
