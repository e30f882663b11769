"""`ggctl build`: the service image, built on node-0 with BuildKit, no local Docker.

    context.py   the deterministic build context (app/ + the model) and its content-hash tag
    build.py     stream the context over SSH to node-0's BuildKit, push to node-0:5000

The Dockerfile and the service itself live in the top-level app/.
"""
