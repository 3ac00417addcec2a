"""rethink: reproduce and extend *Rethinking the Value of Network Pruning* (Liu et al., ICLR 2019)."""

__version__ = "0.1.0"
