"""larder.quality"""
