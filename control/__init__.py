"""splitgate's control plane: the admin API over the routing document in Redis."""
