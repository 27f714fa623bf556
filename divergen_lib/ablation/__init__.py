"""DiverGen's ablations in miniature: every setting's generated data, its runs over several seeds, and the
report (mean ± std, the papers' claims checked, coverage of real val)."""
