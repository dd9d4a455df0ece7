"""Sample-quality metrics (issue 13, in progress): `scores` has FID, KID, Inception Score
and precision/recall as pure functions of feature sets."""
