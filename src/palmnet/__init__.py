"""palmnet: a virtual IPv6 network in the palm of your hand."""

__version__ = "0.1.0"
