"""larder.training"""
