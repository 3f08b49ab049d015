"""Media pipeline: render, probe, transcode, thumbnails and spritesheets via FFmpeg."""
