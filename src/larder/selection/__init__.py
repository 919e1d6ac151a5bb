"""larder.selection"""
