"""The action's HTTP client (`client`) and the HTTP/1.1 wire protocol under it (`connection`)."""
