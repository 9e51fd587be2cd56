"""Motion capture files of every flavour the project reads (CMU BVH, DAZ BVH, Bandai BVH, ASF/AMC) -> COCO-17."""

from pose_server.mocap.clips import FEET, MocapClip, category_of, clip_subject, find_clips, load_clip

__all__ = ["MocapClip", "load_clip", "find_clips", "clip_subject", "category_of", "FEET"]
