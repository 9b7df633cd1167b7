"""woo2d365: moves WooCommerce orders into Microsoft Dynamics 365 Business Central."""

__version__ = "0.1.0"
