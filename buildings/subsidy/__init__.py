"""Subsidy policies as data, the eligibility engine and the retrofit priority ranking."""
