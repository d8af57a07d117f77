"""The job's 3MF, fetched from the printer over FTPS and read for its plate's filaments, grams and thumbnail."""
