"""Empirical privacy auditing: canaries, the training runs that insert them, and epsilon lower bounds."""
