"""`python -m compactor.bench`: reproduces the UFFDIO_REMAP series' measurements and says whether each holds here."""
