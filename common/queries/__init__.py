"""All SQL lives here, as functions that take a Connection; none of them commits."""
