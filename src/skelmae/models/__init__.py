"""skelmae.models"""
