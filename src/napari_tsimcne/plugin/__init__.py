"""The napari plugin: the widgets, reader and sample data its ``napari.yaml`` names.

The widgets and the layers they draw (need napari and Qt):

* :mod:`.train_widget` (Train map) with its fields in :mod:`.training_form`;
* :mod:`.explore_widget` (Explore map) with :mod:`.gallery`,
  :mod:`.color_key` and :mod:`.findings`;
* :mod:`.map_layers` (a map as a Points layer: drawn, protected, clicked),
  :mod:`.helper_layers` (rings, outlines, lasso, thumbnails) and
  :mod:`.messages`;
* :mod:`.reader` and :mod:`.sample_data`.

What they compute, without napari or Qt (tested on their own):

* :mod:`.controller` (training, progress, Cancel) and :mod:`.training_choices`
  (presets and defaults of the form);
* :mod:`.layer_layout` (images from layer data, object crops);
* :mod:`.map_table` (the map's table and record), :mod:`.geometry`,
  :mod:`.colors`, :mod:`.outliers` and :mod:`.montage`.

The core package (everything outside this one) never imports it.
"""
