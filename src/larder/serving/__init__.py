"""larder.serving"""
