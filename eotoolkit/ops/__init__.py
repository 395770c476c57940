"""Operations on loaded data: subsets, regridding, masks, indices, composites, phenology."""
