"""mnist_native: the MNIST neural-network teaching lab at native speed."""
__version__ = "0.1.0"
