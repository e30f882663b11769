"""`ggctl cluster`: the playbook runner, its progress display and the API tunnel.

    run.py         plan a playbook run, run it with ansible-runner, fetch the kubeconfig
    events.py      ansible-runner events → tasks, hosts, per-role time, failures (rich display)
    tunnel.py      the Kubernetes API through an SSH tunnel via node-0; `ggctl kubectl`
    kubeclient.py  a Kubernetes API client from a kubeconfig (deploy and evaluate use it)

The playbooks and roles themselves live in the top-level playbooks/ and roles/.
"""
