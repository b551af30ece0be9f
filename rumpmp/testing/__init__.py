"""Testing with rump kernels: the pytest plugin (``rumpmp.testing.plugin``)."""
