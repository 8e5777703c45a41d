"""Tables of the ticket queue."""
