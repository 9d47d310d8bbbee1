"""splitgate's data plane: the streaming reverse proxy with sticky weighted splitting."""
