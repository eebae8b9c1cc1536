//! The catalog: every registered dataset and source with its files, digests, licenses and
//! normalization. Data, not logic: the lookup and verification code is in the parent module.

use super::{
    Dataset, DebianPin, DebianSource, FileSpec, Normalization, Role, FMNIST_MEAN, FMNIST_STD,
};

/// The Debian (bookworm) package versions the sources are pinned to, with the SHA-256 of each
/// `.deb`; `scripts/fetch-sources.sh` lists the same lines.
pub(super) static DEBIAN_PINS: &[DebianPin] = &[
    pin(
        "dataset-fashion-mnist",
        "0.0~git20200523.55506a9-1",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
    ),
    pin(
        "gimp-data",
        "2.10.34-1+deb12u10",
        "89007a69d4ef2b0440e5419e75d4112cfd1c49e97db38220d210b9f86322be7c",
    ),
    pin(
        "python3-skimage",
        "0.19.3-8",
        "728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9",
    ),
    pin(
        "python3-sklearn",
        "1.2.1+dfsg-1",
        "ca0c6be401d14871c7e93cfdd8d1f561595dc65e6e2ad2501d568aee7f7efc58",
    ),
    pin(
        "openarena-081-textures",
        "0.8.5split-14",
        "72bf05abd5286a1523b56ca04e25bceb775813d747f92ecd20749d512361a81f",
    ),
    pin(
        "mate-backgrounds",
        "1.26.0-1",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
    ),
    pin(
        "gcompris-qt-data",
        "3.1-2",
        "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f",
    ),
    pin(
        "lomiri-wallpapers-16.04",
        "20.04.0-2",
        "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
    ),
    pin(
        "plasma-workspace-wallpapers",
        "4:5.27.5-2",
        "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b",
    ),
];

const fn pin(package: &'static str, version: &'static str, deb_sha256: &'static str) -> DebianPin {
    DebianPin {
        package,
        version,
        deb_sha256,
    }
}

const CIFAR_MEAN: &[f32] = &[125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0];
const CIFAR_STD: &[f32] = &[63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0];
const FASHION_CLASSES: &[&str] = &[
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const DIGITS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const CIFAR10_CLASSES: &[&str] = &[
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

macro_rules! file {
    ($name:expr, [$($url:expr),* $(,)?], [$($sha:expr),* $(,)?], $content:expr, $size:expr) => {
        FileSpec { name: $name, urls: &[$($url),*], sha256: &[$($sha),*], content_sha256: $content, size: $size }
    };
}

/// The fields an entry leaves out (`..EMPTY`): no files, Debian source, shared copy, image count,
/// fixed shape, classes, normalization or size. Every entry names its own identity and note.
const EMPTY: Dataset = Dataset {
    name: "",
    title: "",
    role: Role::Source,
    license: "",
    homepage: "",
    files: &[],
    debian: None,
    shared_dir: None,
    images: None,
    shape: [0, 0, 0],
    classes: &[],
    normalization: None,
    size: None,
    note: "",
};

pub(super) static REGISTRY: &[Dataset] = &[
    Dataset {
        name: "fmnist",
        title: "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017)",
        role: Role::InDistribution,
        license: "MIT",
        homepage: "https://github.com/zalandoresearch/fashion-mnist",
        files: &[
            file!("train-images-idx3-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "train-images-idx3-ubyte.gz")],
                ["3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"],
                Some("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"), None),
            file!("train-labels-idx1-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "train-labels-idx1-ubyte.gz")],
                ["a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"],
                Some("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"), None),
            file!("t10k-images-idx3-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "t10k-images-idx3-ubyte.gz")],
                ["346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"],
                Some("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"), None),
            file!("t10k-labels-idx1-ubyte.gz", [concat!("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "t10k-labels-idx1-ubyte.gz")],
                ["67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"],
                Some("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"), None),
        ],
        debian: Some(DebianSource {
            package: "dataset-fashion-mnist",
            dir: "usr/share/datasets/fashion-mnist",
            required: &[],
        }),
        images: Some(70_000),
        shape: [28, 28, 1],
        classes: FASHION_CLASSES,
        normalization: Some(Normalization { mean: &[FMNIST_MEAN], std: &[FMNIST_STD] }),
        note: "60,000 train + 10,000 test; the benchmark splits train 55,000/5,000 (seeded)",
        ..EMPTY
    },
    Dataset {
        name: "mnist-test",
        title: "MNIST test set (LeCun, Cortes, Burges)",
        role: Role::OodTest,
        license: "CC BY-SA 3.0",
        homepage: "http://yann.lecun.com/exdb/mnist/",
        files: &[
            file!("t10k-images-idx3-ubyte.gz",
                ["https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz", "http://yann.lecun.com/exdb/mnist/t10k-images-idx3-ubyte.gz"],
                ["8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b"],
                Some("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"), None),
            file!("t10k-labels-idx1-ubyte.gz",
                ["https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz"],
                ["f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c"],
                Some("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"), None),
        ],
        shared_dir: Some("mnist"),
        images: Some(10_000),
        shape: [28, 28, 1],
        classes: DIGITS,
        normalization: Some(Normalization { mean: &[0.1307], std: &[0.3081] }),
        note: "OOD test set of the Fashion-MNIST benchmark",
        ..EMPTY
    },
    Dataset {
        name: "notmnist-test",
        title: "notMNIST letters A-J, IDX conversion (davidflanagan/notMNIST-to-MNIST)",
        role: Role::OodTest,
        license: "MIT",
        homepage: "https://github.com/davidflanagan/notMNIST-to-MNIST",
        files: &[
            file!("t10k-images-idx3-ubyte.gz",
                ["https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/t10k-images-idx3-ubyte.gz"],
                ["70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7"],
                Some("8e7f38ae95cc8f48e0986175ffc9137e5007ebcf3d8fdf6656c904eb9dab198b"), Some(3_172_375)),
            file!("t10k-labels-idx1-ubyte.gz",
                ["https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/t10k-labels-idx1-ubyte.gz"],
                ["1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b"],
                Some("5f8e6012f2ce730700d8d05fca098bc47f71d25b890e4bec7ac5ebfd614a4001"), Some(5_118)),
        ],
        shared_dir: Some("notmnist"),
        images: Some(10_000),
        shape: [28, 28, 1],
        classes: &["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"],
        size: Some(3_177_493),
        note: "OOD test set of the Fashion-MNIST benchmark",
        ..EMPTY
    },
    Dataset {
        name: "omniglot-small",
        title: "Omniglot, the two small background sets (Lake, Salakhutdinov, Tenenbaum 2015)",
        role: Role::OodTest,
        license: "MIT",
        homepage: "https://github.com/brendenlake/omniglot",
        files: &[
            file!("images_background_small1.zip",
                ["https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_background_small1.zip"],
                ["f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"], None, Some(1_319_022)),
            file!("images_background_small2.zip",
                ["https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_background_small2.zip"],
                ["3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f"], None, Some(1_580_917)),
        ],
        shared_dir: Some("omniglot"),
        images: Some(5_840),
        shape: [105, 105, 1],
        size: Some(2_899_939),
        note: "2,720 + 3,120 black-on-white PNGs; the benchmark resizes to 28x28 and inverts",
        ..EMPTY
    },
    Dataset {
        name: "cifar10",
        title: "CIFAR-10 (Krizhevsky 2009)",
        role: Role::InDistribution,
        license: "no explicit license (research use)",
        homepage: "https://www.cs.toronto.edu/~kriz/cifar.html",
        files: &[
            file!("cifar-10-binary.tar.gz", ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
                ["c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"], None, Some(170_052_171)),
        ],
        images: Some(60_000),
        shape: [32, 32, 3],
        classes: CIFAR10_CLASSES,
        normalization: Some(Normalization { mean: CIFAR_MEAN, std: CIFAR_STD }),
        size: Some(170_052_171),
        note: "binary release; python release: cifar-10-python.tar.gz sha256 6d958be0...c001ce",
        ..EMPTY
    },
    Dataset {
        name: "cifar100",
        title: "CIFAR-100 (Krizhevsky 2009)",
        role: Role::InDistribution,
        license: "no explicit license (research use)",
        homepage: "https://www.cs.toronto.edu/~kriz/cifar.html",
        files: &[
            file!("cifar-100-binary.tar.gz", ["https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"],
                ["58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec"], None, None),
        ],
        images: Some(60_000),
        shape: [32, 32, 3],
        normalization: Some(Normalization { mean: CIFAR_MEAN, std: CIFAR_STD }),
        note: "100 fine / 20 coarse classes; python release: cifar-100-python.tar.gz sha256 85cd44d0...a677a7",
        ..EMPTY
    },
    Dataset {
        name: "svhn",
        title: "SVHN cropped digits, test split (Netzer et al. 2011)",
        role: Role::OodTest,
        license: "non-commercial use",
        homepage: "http://ufldl.stanford.edu/housenumbers/",
        files: &[
            file!("test_32x32.mat", ["http://ufldl.stanford.edu/housenumbers/test_32x32.mat"],
                ["cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"], None, None),
        ],
        images: Some(26_032),
        shape: [32, 32, 3],
        classes: DIGITS,
        note: "MATLAB v5; label 10 means digit 0",
        ..EMPTY
    },
    Dataset {
        name: "textures-dtd",
        title: "Describable Textures Dataset (Cimpoi et al. 2014)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://www.robots.ox.ac.uk/~vgg/data/dtd/",
        files: &[
            file!("dtd-r1.0.1.tar.gz", ["https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"],
                ["e42855a52a4950a3b59612834602aa253914755c95b0cff9ead6d07395f8e205"], None, None),
        ],
        images: Some(5_640),
        shape: [0, 0, 3],
        note: "47 classes in sub-folders; the paper resizes the shorter side to 32 and center-crops 32",
        ..EMPTY
    },
    Dataset {
        name: "places365",
        title: "Places365 test images, 256x256 (Zhou et al. 2017)",
        role: Role::OodTest,
        license: "research use",
        homepage: "http://places2.csail.mit.edu/",
        files: &[file!("test_256.tar", ["http://data.csail.mit.edu/places/places365/test_256.tar"], [], None, None)],
        images: Some(328_500),
        shape: [256, 256, 3],
        note: "no published SHA-256; the code of record samples 10,000 images: `eood data build places365 --archive test_256.tar` (seeded, manifest)",
        ..EMPTY
    },
    Dataset {
        name: "lsun-crop",
        title: "LSUN-Crop (ODIN release, Liang et al. 2018)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://github.com/facebookresearch/odin",
        files: &[file!("LSUN.tar.gz", ["https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz?dl=1"], [], None, None)],
        images: Some(10_000),
        shape: [36, 36, 3],
        note: "no published SHA-256; 36x36, fed unresized as the code of record does (`eood data convert --resize none`)",
        ..EMPTY
    },
    Dataset {
        name: "lsun-resize",
        title: "LSUN-Resize (ODIN release)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://github.com/facebookresearch/odin",
        files: &[file!("LSUN_resize.tar.gz", ["https://www.dropbox.com/s/moqh2wh8696c3yl/LSUN_resize.tar.gz?dl=1"], [], None, None)],
        images: Some(10_000),
        shape: [32, 32, 3],
        note: "no published SHA-256",
        ..EMPTY
    },
    Dataset {
        name: "isun",
        title: "iSUN (ODIN release)",
        role: Role::OodTest,
        license: "research use",
        homepage: "https://github.com/facebookresearch/odin",
        files: &[file!("iSUN.tar.gz", ["https://www.dropbox.com/s/ssz7qxfqae0cca5/iSUN.tar.gz?dl=1"], [], None, None)],
        images: Some(8_925),
        shape: [32, 32, 3],
        note: "no published SHA-256",
        ..EMPTY
    },
    Dataset {
        name: "tiny-images",
        title: "80 Million Tiny Images (Torralba, Fergus, Freeman 2008)",
        role: Role::Outliers,
        license: "withdrawn by its authors in 2020",
        homepage: "https://groups.csail.mit.edu/vision/TinyImages/",
        files: &[file!("tiny_images.bin", ["http://horatio.cs.nyu.edu/mit/tiny/data/tiny_images.bin"], [], None, Some(243_615_796_224))],
        images: Some(79_302_017),
        shape: [32, 32, 3],
        size: Some(243_615_796_224),
        note: "withdrawn, no longer distributed; the paper's outlier set (`finetune --outliers tiny_images.bin --outlier-exclusion 80mn_cifar_idxs.txt`). Use 300k-random instead",
        ..EMPTY
    },
    Dataset {
        name: "300k-random",
        title: "300K random images (Hendrycks et al., subset of 80M Tiny Images)",
        role: Role::Outliers,
        license: "as 80M Tiny Images (research use)",
        homepage: "https://github.com/hendrycks/outlier-exposure",
        files: &[file!("300K_random_images.npy", ["https://people.eecs.berkeley.edu/~hendrycks/300K_random_images.npy"], [], None, None)],
        images: Some(300_000),
        shape: [32, 32, 3],
        note: "N x 32 x 32 x 3 uint8 .npy; no published SHA-256",
        ..EMPTY
    },
    Dataset {
        name: "gimp-patterns",
        title: "GIMP patterns (Debian gimp-data)",
        role: Role::Source,
        license: "GPL-3+",
        homepage: "https://packages.debian.org/bookworm/gimp-data",
        debian: Some(DebianSource {
            package: "gimp-data",
            dir: "usr/share/gimp/2.0/patterns",
            required: &["Fabric/burlap.pat"],
        }),
        images: Some(58),
        size: Some(14_214_540),
        note: "tileable .pat textures: Textures OOD test set",
        ..EMPTY
    },
    Dataset {
        name: "skimage-data",
        title: "scikit-image sample images (Debian python3-skimage)",
        role: Role::Source,
        license: "mostly public domain / CC0 (see skimage/data/README.txt)",
        homepage: "https://packages.debian.org/bookworm/python3-skimage",
        debian: Some(DebianSource {
            package: "python3-skimage",
            dir: "usr/lib/python3/dist-packages/skimage/data",
            required: &["brick.png", "grass.png", "gravel.png", "astronaut.png", "camera.png", "chelsea.png"],
        }),
        size: Some(20_713_608),
        note: "textures (brick, grass, gravel) and photos: Textures and Photo-* OOD test sets",
        ..EMPTY
    },
    Dataset {
        name: "sklearn-images",
        title: "scikit-learn sample images china.jpg, flower.jpg (Debian python3-sklearn)",
        role: Role::Source,
        license: "CC BY 2.0",
        homepage: "https://packages.debian.org/bookworm/python3-sklearn",
        debian: Some(DebianSource {
            package: "python3-sklearn",
            dir: "usr/lib/python3/dist-packages/sklearn/datasets/images",
            required: &["china.jpg", "flower.jpg"],
        }),
        images: Some(2),
        shape: [427, 640, 3],
        size: Some(2_102_964),
        note: "photos: Photo-* OOD test sets",
        ..EMPTY
    },
    Dataset {
        name: "openarena-textures",
        title: "OpenArena 0.8.1 textures (Debian openarena-081-textures)",
        role: Role::Source,
        license: "GPL-2+",
        homepage: "https://packages.debian.org/bookworm/openarena-081-textures",
        debian: Some(DebianSource {
            package: "openarena-081-textures",
            dir: "usr/share/games/openarena/baseoa",
            required: &["pak4-textures.pk3"],
        }),
        images: Some(1_648),
        size: Some(93_727_900),
        note: "zip of TGA/JPG game textures: auxiliary outliers",
        ..EMPTY
    },
    Dataset {
        name: "mate-backgrounds",
        title: "MATE desktop nature photos (Debian mate-backgrounds)",
        role: Role::Source,
        license: "GPL-2+",
        homepage: "https://packages.debian.org/bookworm/mate-backgrounds",
        debian: Some(DebianSource {
            package: "mate-backgrounds",
            dir: "usr/share/backgrounds/mate/nature",
            required: &["Garden.jpg"],
        }),
        images: Some(12),
        shape: [0, 0, 3],
        size: Some(46_638_500),
        note: "large nature photos: auxiliary outliers",
        ..EMPTY
    },
    Dataset {
        name: "gcompris-photos",
        title: "GCompris activity photographs (Debian gcompris-qt-data)",
        role: Role::Source,
        license: "per photo: public domain, CC BY or CC BY-SA (debian/copyright of gcompris-qt-data)",
        homepage: "https://packages.debian.org/bookworm/gcompris-qt-data",
        debian: Some(DebianSource {
            package: "gcompris-qt-data",
            dir: "usr/share/gcompris-qt/rcc",
            required: &[
                "categorization.rcc",
                "clickgame.rcc",
                "details.rcc",
                "erase.rcc",
                "explore_farm_animals.rcc",
                "explore_monuments.rcc",
                "explore_world_animals.rcc",
                "explore_world_music.rcc",
            ],
        }),
        images: Some(274),
        shape: [0, 0, 3],
        size: Some(44_196_292),
        note: "WebP photos inside Qt .rcc archives (animals, monuments, tools, landscapes): Photo-* OOD test sets",
        ..EMPTY
    },
    Dataset {
        name: "lomiri-photos",
        title: "Lomiri (Ubuntu Touch 16.04) photo wallpapers (Debian lomiri-wallpapers-16.04)",
        role: Role::Source,
        license: "CC BY 4.0, CC BY-SA 4.0, CC0 (per file, debian/copyright)",
        homepage: "https://packages.debian.org/bookworm/lomiri-wallpapers-16.04",
        debian: Some(DebianSource {
            package: "lomiri-wallpapers-16.04",
            dir: "usr/share/backgrounds",
            required: &["Dragonfly_by_Bolly.jpg", "seeding_by_Clements_Engelhardt.jpg"],
        }),
        images: Some(14),
        shape: [0, 0, 3],
        size: Some(15_783_184),
        note: "large photos: Photo-* OOD test sets",
        ..EMPTY
    },
    Dataset {
        name: "plasma-photos",
        title: "KDE Plasma photo wallpapers (Debian plasma-workspace-wallpapers)",
        role: Role::Source,
        license: "GPL-2+ (debian/copyright)",
        homepage: "https://packages.debian.org/bookworm/plasma-workspace-wallpapers",
        debian: Some(DebianSource {
            package: "plasma-workspace-wallpapers",
            dir: "usr/share/wallpapers",
            required: &["Path/contents/images/2560x1600.jpg", "Kite/contents/images/2560x1600.jpg"],
        }),
        images: Some(11),
        shape: [1600, 2560, 3],
        size: Some(94_047_772),
        note: "2560x1600 photos: Photo-* OOD test sets",
        ..EMPTY
    },
];
