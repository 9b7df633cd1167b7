"""WooCommerce side: REST client and the mapping of shop JSON to the canonical order."""
