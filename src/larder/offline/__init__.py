"""larder.offline"""
