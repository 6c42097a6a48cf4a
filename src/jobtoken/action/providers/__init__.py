"""One module per provider; the contract they keep is `jobtoken.action.provider`."""
