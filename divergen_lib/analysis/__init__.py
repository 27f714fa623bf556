"""Distribution analysis of real vs generated instances: discrepancy metrics between embedding sets and 2-D maps."""
