"""In-process fakes of the remote services ggctl talks to, for tests over real HTTP."""
