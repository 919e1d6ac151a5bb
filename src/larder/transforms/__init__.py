"""larder.transforms"""
