"""Load tests for splitgate: the locustfile, its pure logic, and a fake LLM backend."""
