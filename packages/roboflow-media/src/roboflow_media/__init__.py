"""Roboflow media: image decoding to numpy, streaming video encoders, probing and remuxing."""

from roboflow_media._base import Backend, EncodedVideo, VideoEncoder
from roboflow_media._cpus import available_cpus, cgroup_cpu_limit, share_cpus
from roboflow_media._limits import MAX_IMAGE_PIXELS
from roboflow_media._settings import DEPTH_PIX_FMT, depth_extra_options
from roboflow_media.background import BackgroundEncoder
from roboflow_media.compressed_image import decode_compressed_image
from roboflow_media.concat import concat_videos, is_faststart
from roboflow_media.encoder import cores_per_encoder, open_encoder
from roboflow_media.probe import VideoProbe, iter_gray16_frames, iter_video_frames, probe_video
from roboflow_media.raw_image import RAW_ENCODINGS, decode_raw_image
from roboflow_media.yuv_image import YUV_LAYOUTS, YuvLayout, decode_yuv_image

__all__ = [
    "DEPTH_PIX_FMT",
    "MAX_IMAGE_PIXELS",
    "RAW_ENCODINGS",
    "YUV_LAYOUTS",
    "Backend",
    "BackgroundEncoder",
    "EncodedVideo",
    "VideoEncoder",
    "VideoProbe",
    "YuvLayout",
    "available_cpus",
    "cgroup_cpu_limit",
    "concat_videos",
    "cores_per_encoder",
    "decode_compressed_image",
    "decode_raw_image",
    "decode_yuv_image",
    "depth_extra_options",
    "is_faststart",
    "iter_gray16_frames",
    "iter_video_frames",
    "open_encoder",
    "probe_video",
    "share_cpus",
]
