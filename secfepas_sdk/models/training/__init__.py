"""``secfepas model train``: fine-tune an ImageNet network on UNBC-McMaster (extra ``train``)."""
