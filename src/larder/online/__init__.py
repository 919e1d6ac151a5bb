"""larder.online"""
