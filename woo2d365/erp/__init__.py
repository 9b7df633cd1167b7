"""ERP side: the interface the pipeline talks to and its Dynamics implementations."""
