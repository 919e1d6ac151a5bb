"""larder.cli"""
