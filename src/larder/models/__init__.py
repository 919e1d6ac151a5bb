"""larder.models"""
