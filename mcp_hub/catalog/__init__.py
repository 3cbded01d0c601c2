"""The unified catalog: public names (`names`), the in-memory catalog (`catalog`), and its sync with the
downstream servers and the database (`sync`)."""
