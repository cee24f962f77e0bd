"""Scene worlds: synthetic clips with labels for every task (AVE, AVVP, AVS S4/MS3, AVQA) from one scene.

`get_world("shapes" | "stamps")` gives a World; `SceneDataset` renders its clips on the fly, deterministically;
`python -m avmoe make-data` (make_data.py) writes them to mp4 + JSON.
"""
from avmoe.data.synthetic.dataset import SPLITS, SceneDataset, scene_seed
from avmoe.data.synthetic.registry import WORLDS, get_world
from avmoe.data.synthetic.render import Video
from avmoe.data.synthetic.sampler import TASKS, SamplerConfig
from avmoe.data.synthetic.scene import Scene, SceneObject
from avmoe.data.synthetic.world import World

__all__ = ["SPLITS", "TASKS", "WORLDS", "SamplerConfig", "Scene", "SceneDataset", "SceneObject", "Video", "World",
           "get_world", "scene_seed"]
