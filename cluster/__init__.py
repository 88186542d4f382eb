"""Ray cluster bring-up and job submission.

Owns connecting to (or starting) Ray, the Ray Jobs API client behind ``videxperts submit``,
and the deployment files: a ``ray up`` launcher YAML, KubeRay manifests, and the documented
local multi-node setup.
"""
